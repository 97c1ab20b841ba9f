"""The live feed of order changes (Server-Sent Events): the ``LiveFeed`` port and its adapters."""
