"""Action runners: command, python, http, llm."""
