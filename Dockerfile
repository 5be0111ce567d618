# The mmrag image: API, Celery worker and Flower (see docker-compose.yml), installed from the
# same requirements.lock as every developer machine and CI: the exact versions and hashes.
# The lock pins the CPU build of torch (2.13.0+cpu), which PyPI does not carry: PyTorch's CPU
# index serves it. A GPU image needs a lock resolved against a CUDA torch.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes --no-deps \
      --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.lock
COPY pyproject.toml README.md ./
COPY mmrag ./mmrag
RUN pip install --no-cache-dir --no-deps --no-build-isolation .
ENV MMRAG_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8000
CMD ["mmrag", "serve", "--host", "0.0.0.0", "--port", "8000"]
