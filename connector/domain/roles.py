"""The roles a person who logs in to the pages can hold (users in the store).

A plain tuple in the pure domain, so the command line can offer them as choices without
loading the store and its SQL toolkit (`telederm wrap` starts without them).
"""

USER_ROLES = ("requester", "specialist", "manager", "admin")
