"""The mapping stage: the upstream's answers and events -> the contract's messages.

``results`` maps a whole ImagesResponse (and slices images for streams); ``events``
turns a reply, whole or streamed, into the image slices and the final result that
the stream RPCs send.
"""
