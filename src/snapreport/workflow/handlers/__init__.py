"""The dialogue's handlers: ``context`` (what a handler gets and gives back, shared helpers),
``shared`` (what every state answers, and idle chat), ``report`` and ``close`` (the two flows).
The transition table (``workflow.states``) names them as functions."""
