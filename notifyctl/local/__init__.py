"""The local stack: the SAM template translated and deployed into moto, functions run in-process."""
