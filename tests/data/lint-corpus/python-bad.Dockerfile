FROM python:3.12
RUN apt-get update
RUN apt-get install -y libpq-dev gcc
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . /app
CMD python /app/main.py
