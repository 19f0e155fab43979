"""The lab's AMQP 0-9-1 wire code."""
