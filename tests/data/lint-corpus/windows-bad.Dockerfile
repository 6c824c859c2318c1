# escape=`
FROM mcr.microsoft.com/windows/nanoserver
COPY app.exe C:/app/
USER ContainerUser
CMD C:\app\app.exe
