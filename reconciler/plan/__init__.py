"""Making and reading plans: the diff of desired against live state, its policy and limits, and the plan's JSON
form (``codec``) and saved plan files (``planfile``).
"""
