"""The sandbox: every uploaded model file is loaded, checked and run in a worker process
with no secrets, no network, no privileges and hard limits. The server only sees bytes and
a fixed JSON schema coming back."""
