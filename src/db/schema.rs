// Hand-kept to match migrations/{sqlite,postgres}; portable types only.

diesel::table! {
    tenants (id) {
        id -> Text,
        name -> Text,
        status -> Text,
        max_lifetime_days -> Text,
        siem_tier2_enabled -> Bool,
        policy_updated_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    members (id) {
        id -> Text,
        tenant_id -> Text,
        email -> Text,
        role -> Text,
        status -> Text,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        user_name -> Nullable<Text>,
        external_id -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        tenant_id -> Text,
        key_type -> Text,
        label -> Text,
        secret_hash -> Text,
        hint -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        revoke_reason -> Nullable<Text>,
        superseded_at -> Nullable<Timestamp>,
        rotated_from -> Nullable<Text>,
        rotated_to -> Nullable<Text>,
        chain_id -> Text,
        ip_allowlist -> Text,
        last_used_at -> Nullable<Timestamp>,
        last_used_ip -> Nullable<Text>,
    }
}

diesel::table! {
    audit_chains (chain_id) {
        chain_id -> Text,
        last_seq -> BigInt,
        last_hash -> Text,
    }
}

diesel::table! {
    audit_events (event_id) {
        event_id -> Text,
        chain_id -> Text,
        tenant_id -> Nullable<Text>,
        seq -> BigInt,
        occurred_at -> Timestamp,
        operation -> Text,
        outcome -> Text,
        reason -> Nullable<Text>,
        actor_type -> Text,
        actor_id -> Nullable<Text>,
        key_id -> Nullable<Text>,
        key_type -> Nullable<Text>,
        key_hint -> Nullable<Text>,
        request_id -> Text,
        client_ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        status_code -> Integer,
        metadata -> Text,
        payload -> Nullable<Text>,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::joinable!(api_keys -> tenants (tenant_id));
diesel::joinable!(members -> tenants (tenant_id));
diesel::allow_tables_to_appear_in_same_query!(
    tenants,
    members,
    api_keys,
    audit_chains,
    audit_events
);
