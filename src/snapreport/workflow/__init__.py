"""The incident dialogue: states, transitions and texts, on top of the session engine."""
