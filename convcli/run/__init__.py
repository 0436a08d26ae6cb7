"""Running a command: the frozen spec, output plans and their safety check, one plan executed, scale-out."""
