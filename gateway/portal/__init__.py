"""The portal's room: its models (accounts, sessions, codes, the audit table, jobs) and
the services pages and commands call (accounts, activation, applications, guidelines,
recovery, letters, people, alerts, access facts and rules, jobs, the school year)."""
