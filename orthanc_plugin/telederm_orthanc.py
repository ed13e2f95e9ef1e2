import orthanc
orthanc.LogWarning("hello")
