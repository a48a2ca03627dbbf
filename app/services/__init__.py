"""Domain services (no web framework here): auth, characters, chat, groups, memory, admin."""
