"""Pure decisions: every policy's state machine lives here.

Rule: nothing under this package sleeps, waits, locks or does I/O; time and
randomness come in as arguments. (tests/machines/test_purity.py enforces it.)
"""
