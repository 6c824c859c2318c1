FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends \
        build-essential gfortran libopenblas-dev \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt
RUN apt-get purge -y --auto-remove build-essential gfortran \
    && rm -rf /var/lib/apt/lists/* /tmp/requirements.txt
RUN groupadd -r ds && useradd -r -g ds -m ds
USER ds
WORKDIR /home/ds
EXPOSE 8888
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--no-browser"]
