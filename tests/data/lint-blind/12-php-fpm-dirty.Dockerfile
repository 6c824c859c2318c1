FROM php:8.2-fpm
RUN apt-get update && apt-get install -y \
        libpng-dev \
        libzip-dev \
        unzip \
    && docker-php-ext-install gd zip
COPY --from=composer:2 /usr/bin/composer /usr/bin/composer
WORKDIR /var/www/html
COPY . .
RUN composer install --no-dev --optimize-autoloader
RUN chown -R www-data:www-data /var/www/html
CMD ["php-fpm"]
