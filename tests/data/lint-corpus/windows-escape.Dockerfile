# escape=`
FROM mcr.microsoft.com/windows/servercore:ltsc2022
SHELL ["powershell", "-Command"]
RUN New-Item -ItemType Directory C:\app ; `
    Set-Location C:\app
COPY app.exe C:/app/
USER ContainerUser
ENTRYPOINT ["C:\\app\\app.exe"]
