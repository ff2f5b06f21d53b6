"""Keeping what the mirror deletes or overwrites, for a retention window (`keep_deleted`)."""
