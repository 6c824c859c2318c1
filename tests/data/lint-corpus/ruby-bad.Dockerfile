FROM ruby:3.3
RUN apt-get update && apt-get install -y build-essential nodejs
WORKDIR /app
COPY Gemfile Gemfile.lock ./
RUN bundle install
COPY . .
CMD bundle exec puma
