"""The client's network side: the WebSocket session, reconnect backoff and the resume-token store."""
