"""The orders port: alarms and work orders, with an event log per order."""
