"""The inference server: gRPC (logllm.v1.Inference + health + reflection) and an HTTP/JSON endpoint.

`core` holds what both transports share (limits, detector, dynamic batcher); `grpc_service` and
`http_gateway` translate their wire formats; `server` owns the lifecycle (load, warm up, serve,
drain). Nothing here is imported by `import logllm_plugin`.
"""
