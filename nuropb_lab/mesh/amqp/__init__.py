"""The lab's AMQP 0-9-1 wire code, on pamqp's frame objects and aiormq's connection.

- constants.py: frame types, layouts and sizes; FrameError
- table.py: field tables and their values (decode, pick a few keys, encode)
- properties.py: a content header's properties
- unmarshal.py: frames into pamqp's objects, for aiormq (strings that are not UTF-8 too)
- receiver.py: aiormq's frames read in chunks, for the lab's own aiormq connections
- reader.py: deliveries parsed from the bytes, for the events connection
- frames.py: the hot path's frames, encoded

Nothing here changes aiormq or pamqp: the lab's connections use this code, others do not.
"""
