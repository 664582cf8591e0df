"""Scenarios: a federation, its workload, a fault schedule and what must hold after.

loader (YAML onto scenario.proto, checks), configs (each domain's agent config), runner
(the schedule and the expectations over a process or netns federation), report, compose.
"""
