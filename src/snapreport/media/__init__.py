"""The media port: where photos are kept, validated before they are stored."""
