"""Pure domain: cases, people, images, reports, charges and the case state machine.

Nothing here does I/O or reads the clock; time and identifiers are passed in.
"""
