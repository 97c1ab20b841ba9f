"""The vision port: what a vision-language model tells us about a photo."""
