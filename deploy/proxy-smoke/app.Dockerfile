# The smoke app image used by docker-compose.yml: this repository installed, fluxlit as PID 1.
FROM python:3.12-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 FLUXLIT_GATEWAY_HOST=0.0.0.0 FLUXLIT_GATEWAY_PORT=8000
RUN useradd --create-home --uid 10001 fluxlit
WORKDIR /src
COPY . .
RUN pip install --no-cache-dir .
USER 10001:10001
EXPOSE 8000
STOPSIGNAL SIGTERM
ENTRYPOINT ["fluxlit", "serve"]
