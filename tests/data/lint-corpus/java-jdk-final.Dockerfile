FROM eclipse-temurin:21-jdk
COPY app.jar /app.jar
USER 1000
ENTRYPOINT ["java", "-jar", "/app.jar"]
