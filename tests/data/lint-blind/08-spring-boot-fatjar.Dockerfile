FROM maven:3.9-eclipse-temurin-21 AS build
COPY . /build
RUN mvn -f /build/pom.xml clean package

FROM eclipse-temurin:21-jre
COPY --from=build /build/target/app.jar /app.jar
RUN useradd -r -u 1001 spring
USER spring
ENTRYPOINT java -jar /app.jar
