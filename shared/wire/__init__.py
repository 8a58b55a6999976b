"""The wire contract: generated protobuf modules (`v1/`) and the codegen that makes them."""
