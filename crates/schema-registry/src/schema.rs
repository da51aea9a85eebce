// Mirrors migrations/; keep the two in step.

diesel::table! {
    schemas (id) {
        id -> Int4,
        schema_type -> Text,
        schema_text -> Text,
        canonical -> Text,
        refs -> Jsonb,
    }
}

diesel::table! {
    subject_versions (subject, version) {
        subject -> Text,
        version -> Int4,
        schema_id -> Int4,
        deleted -> Bool,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    compatibility_config (subject) {
        subject -> Text,
        compatibility -> Text,
    }
}

diesel::table! {
    registry_mode (subject) {
        subject -> Text,
        mode -> Text,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Int8,
        at -> Timestamptz,
        username -> Text,
        action -> Text,
        subject -> Nullable<Text>,
        version -> Nullable<Text>,
        detail -> Text,
        result -> Text,
    }
}

diesel::joinable!(subject_versions -> schemas (schema_id));
diesel::allow_tables_to_appear_in_same_query!(
    schemas,
    subject_versions,
    compatibility_config,
    registry_mode,
    audit_log
);
