"""Schedules: when a task fires. Pure functions of time and zone."""
