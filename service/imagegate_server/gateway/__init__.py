"""The gRPC side: the ImagesService servicer, uploads, parameters, results, statuses."""
