"""Who is speaking: browser sessions, WeCom OAuth sign-in, one-time sign-in links."""
