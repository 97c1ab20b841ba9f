"""Outgoing webhooks (Standard Webhooks): subscriptions, fan-out, signed delivery."""
