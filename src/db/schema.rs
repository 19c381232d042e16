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
        audit_retention_days -> Nullable<Integer>,
        leaked_key_action -> Text,
        key_expiry_notice_days -> Text,
    }
}

diesel::table! {
    key_notices (key_id, kind) {
        key_id -> Text,
        kind -> Text,
        tenant_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    key_leaks (key_id) {
        key_id -> Text,
        tenant_id -> Text,
        reported_at -> Timestamp,
        url -> Nullable<Text>,
        source -> Nullable<Text>,
        action -> Text,
    }
}

diesel::table! {
    siem_sinks (id) {
        id -> Text,
        tenant_id -> Text,
        name -> Text,
        kind -> Text,
        url -> Text,
        format -> Text,
        filter_operations -> Nullable<Text>,
        filter_outcomes -> Nullable<Text>,
        secret_sealed -> Binary,
        state -> Text,
        delivered_through -> BigInt,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        failing_since -> Nullable<Timestamp>,
        next_attempt_at -> Nullable<Timestamp>,
        consecutive_failures -> Integer,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    secret_scanning_reports (body_sha256) {
        body_sha256 -> Text,
        key_identifier -> Text,
        received_at -> Timestamp,
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
        profile -> Text,
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
        last_at -> Nullable<Timestamp>,
        ordered_from -> BigInt,
    }
}

diesel::table! {
    audit_events (event_id) {
        event_id -> Binary,
        chain_id -> Text,
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
        prev_hash -> Binary,
        hash -> Binary,
        tree_hashes -> Nullable<Binary>,
    }
}

diesel::table! {
    assets (uid) {
        uid -> Text,
        tenant_id -> Text,
        asset_type -> Text,
        asset_id -> Text,
        asset_name -> Text,
        owner_id -> Text,
        session_id -> Nullable<Text>,
        shared_at -> Timestamp,
        permission -> Text,
        asset_exists -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    legal_holds (uid) {
        uid -> Text,
        tenant_id -> Text,
        reason -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        released_at -> Nullable<Timestamp>,
        released_by -> Nullable<Text>,
        release_reason -> Nullable<Text>,
    }
}

diesel::table! {
    legal_hold_members (hold_uid, member_id) {
        hold_uid -> Text,
        tenant_id -> Text,
        member_id -> Text,
    }
}

diesel::table! {
    exports (uid) {
        uid -> Text,
        tenant_id -> Text,
        kind -> Text,
        status -> Text,
        requested_by -> Text,
        member_id -> Nullable<Text>,
        scope -> Nullable<Text>,
        include_files -> Bool,
        include_payload -> Bool,
        start_time -> Nullable<Timestamp>,
        end_time -> Nullable<Timestamp>,
        reason -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        completed_at -> Nullable<Timestamp>,
        attempts -> Integer,
        error -> Nullable<Text>,
        file_name -> Nullable<Text>,
        file_size -> Nullable<BigInt>,
        file_sha256 -> Nullable<Text>,
        format -> Text,
    }
}

diesel::table! {
    key_state (id) {
        id -> Integer,
        version -> BigInt,
    }
}

diesel::table! {
    audit_checkpoints (chain_id, tree_size) {
        chain_id -> Text,
        tree_size -> BigInt,
        root_hash -> Text,
        note -> Text,
        signed_at -> Timestamp,
    }
}

diesel::table! {
    audit_verifications (chain_id) {
        chain_id -> Text,
        tree_size -> BigInt,
        root_hash -> Text,
        chain_hash -> Text,
        verified_at -> Timestamp,
    }
}

diesel::table! {
    audit_archives (chain_id, first_seq) {
        chain_id -> Text,
        first_seq -> BigInt,
        last_seq -> BigInt,
        file_name -> Text,
        sha256 -> Text,
        event_count -> BigInt,
        last_hash -> Text,
        checkpoint_size -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    audit_tree_nodes (chain_id, seq) {
        chain_id -> Text,
        seq -> BigInt,
        event_id -> Binary,
        tree_hashes -> Binary,
    }
}

diesel::table! {
    audit_verification_runs (chain_id) {
        chain_id -> Text,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        run_id -> BigInt,
        state -> Nullable<Text>,
        started_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
        verified_from -> BigInt,
        events_read -> BigInt,
        verified_through -> BigInt,
        head_at_start -> BigInt,
        problems -> Text,
        last_run_id -> Nullable<BigInt>,
        last_state -> Nullable<Text>,
        last_started_at -> Nullable<Timestamp>,
        last_finished_at -> Nullable<Timestamp>,
        last_verified_from -> Nullable<BigInt>,
        last_events_read -> Nullable<BigInt>,
        last_verified_through -> Nullable<BigInt>,
        last_head_at_start -> Nullable<BigInt>,
        last_problems -> Nullable<Text>,
    }
}

diesel::table! {
    scim_groups (id) {
        id -> Text,
        tenant_id -> Text,
        display_name -> Text,
        display_key -> Text,
        external_id -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    scim_group_members (group_id, member_id) {
        tenant_id -> Text,
        group_id -> Text,
        member_id -> Text,
    }
}

diesel::table! {
    role_mappings (tenant_id, target_kind, target) {
        tenant_id -> Text,
        target_kind -> Text,
        target -> Text,
        display_name -> Nullable<Text>,
        role -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    member_assigned_roles (tenant_id, member_id) {
        tenant_id -> Text,
        member_id -> Text,
        role -> Text,
    }
}

diesel::joinable!(api_keys -> tenants (tenant_id));
diesel::joinable!(members -> tenants (tenant_id));
diesel::joinable!(legal_hold_members -> legal_holds (hold_uid));
diesel::joinable!(scim_group_members -> scim_groups (group_id));
diesel::allow_tables_to_appear_in_same_query!(
    tenants,
    members,
    api_keys,
    audit_chains,
    audit_events,
    audit_checkpoints,
    audit_verifications,
    audit_archives,
    audit_tree_nodes,
    audit_verification_runs,
    assets,
    legal_holds,
    legal_hold_members,
    exports,
    key_state,
    key_leaks,
    key_notices,
    secret_scanning_reports,
    siem_sinks,
    scim_groups,
    scim_group_members,
    role_mappings,
    member_assigned_roles
);
