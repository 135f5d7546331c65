"""The policy shells: validated options, plus ``bind``/``abind`` that run the machines."""
