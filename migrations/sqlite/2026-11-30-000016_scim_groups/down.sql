DROP TABLE member_assigned_roles;
DROP TABLE role_mappings;
DROP TABLE scim_group_members;
DROP TABLE scim_groups;
