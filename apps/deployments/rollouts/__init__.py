"""Progressive delivery: how a revision takes traffic (``strategy``), what each step checks (``analysis``) and the
state machine that drives a rollout step by step (``runner``)."""
