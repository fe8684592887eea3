"""Who is calling (users of four kinds, sessions, tokens) and what they may do (actions, roles, grants)."""
