"""Provider staff accounts for the dashboard: passwords, roles, sign-in with lockout and throttle, sessions."""
