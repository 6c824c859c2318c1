FROM ruby:3.3-slim

RUN apt-get update -qq && apt-get install -y --no-install-recommends \
    build-essential libpq-dev nodejs \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /rails
COPY Gemfile Gemfile.lock ./
RUN bundle install --jobs 4 --without development test
COPY . .
RUN bundle exec rails assets:precompile

# run as an unprivileged user
RUN useradd rails --create-home --shell /bin/bash && \
    chown -R rails:rails db log storage tmp
USER rails:rails

ENTRYPOINT bin/docker-entrypoint
EXPOSE 3000
CMD bundle exec rails server -b 0.0.0.0
