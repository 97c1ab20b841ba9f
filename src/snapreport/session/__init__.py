"""The per-user conversation session engine: model, history, engine and stores."""
