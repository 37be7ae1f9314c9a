"""notifyctl: the operator CLI and the local stack for the notifications platform."""
