# The mmrag image: API, Celery worker and Flower (see docker-compose.yml). On PyPI, torch 2.13.0 is the CUDA build: the same image serves
# CPU-only hosts and GPU hosts (with the NVIDIA container runtime).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY mmrag ./mmrag
RUN pip install --no-cache-dir -c constraints.txt ".[distributed]"
ENV MMRAG_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8000
CMD ["mmrag", "serve", "--host", "0.0.0.0", "--port", "8000"]
