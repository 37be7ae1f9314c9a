"""Delivery channels: one provider adapter per channel behind the ``ChannelProvider`` protocol."""
