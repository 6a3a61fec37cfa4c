"""The requests stage: parameters and uploads -> a validated ImagesRequest."""
