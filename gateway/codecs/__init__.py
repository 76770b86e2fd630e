"""Byte formats, pure: SSE decoding, multipart forms, audio file durations. No I/O."""
