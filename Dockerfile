# facedet REST service: the integer engine + FastAPI, no torch.
#   docker build -t facedet .
#   docker run --rm -p 8000:8000 facedet        # then open http://localhost:8000/
# Scale out: run more containers behind a load balancer (the service is stateless), or raise
# `--workers` in CMD to use more cores per container. Settings: FACEDET_* env vars (service/settings.py).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The shipped integer models first: facedet/weights/*.fdet link to them, and the package carries
# DupNet, IFQ and the default (so FACEDET_MODEL is not needed; set it to serve another model).
COPY weights/*.fdet weights/
# Only the serving extra -- numpy, opencv-python-headless, fastapi, fastapi-offline (offline /docs)...
# gcc compiles the native engine (csrc/native) and the libjpeg check of uploads (csrc/jpegcheck,
# against libjpeg62-turbo-dev) during the install; both are removed in the same layer. The runtime
# library libjpeg62-turbo is named on its own so that it is marked manually installed and the
# purge's --auto-remove keeps it (the import check below runs after the purge).
COPY pyproject.toml README.md LICENSE setup.py ./
COPY csrc/native/ csrc/native/
COPY csrc/jpegcheck/ csrc/jpegcheck/
COPY facedet/ facedet/
COPY service/ service/
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev libjpeg62-turbo-dev libjpeg62-turbo \
    && pip install ".[serve]" \
    && apt-get purge -y --auto-remove gcc libc6-dev libjpeg62-turbo-dev && rm -rf /var/lib/apt/lists/* \
    && python -c "from facedet.engine import native; assert native.available_isas(), 'native engine not built'" \
    && python -c "from facedet.jpeg_check import libjpeg_check_built as b; assert b(), 'libjpeg check not built'" \
    && python -c "import service.app" \
    && ! python -c "import torch" 2>/dev/null \
    && echo "serving image: torch is not installed"

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin facedet \
    && chown -R root:root /app && chmod -R a+rX /app
USER facedet

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"

# `facedet serve`, not bare uvicorn: its protocol adds the header/body timeouts, TCP_NODELAY for
# every worker and the /metrics totals across workers (service/server.py).
CMD ["facedet", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "1"]
