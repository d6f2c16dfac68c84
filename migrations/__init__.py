"""Per-tenant schema migrations: registry, steps, snapshots, runner."""
