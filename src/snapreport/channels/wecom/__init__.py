"""The WeCom (企业微信) self-built application channel: the callback, the API client, crypto."""
